"""sa-explain."""
