"""Target devices: profiles (targets/*.toml), toolchain builds and runs of generated C."""
