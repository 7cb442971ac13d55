"""The ``yujing`` command line (typer): ``app`` mounts one module per command group."""
