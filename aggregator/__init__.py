"""The aggregator: verifies the person, fans out to the company connectors,
keeps every query in MongoDB and hands the result SMS to the notifier."""
