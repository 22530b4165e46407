// The burr-rs web UI.
