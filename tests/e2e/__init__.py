"""End-to-end tests: compiled projects booted as real guests (TCG) in a private netns."""
