"""The SMS notifier: every SMS we send, from the unified port 10699000."""
