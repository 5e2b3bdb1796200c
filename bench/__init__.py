"""`make bench` (`python -m bench`): the pipeline measured against this
machine's own ceilings in one run, every headline figure a ratio to a ceiling
measured in the same run (issue 9). `python -m bench --smoke` is the tiny run
that `make test` keeps working."""
