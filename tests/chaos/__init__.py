"""The chaos run (``make chaos``): the platform under load while its parts are killed."""
