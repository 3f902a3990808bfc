"""Device profiles and board support (installed as edgenn.targets)."""
