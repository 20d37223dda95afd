"""Front ends: the `verbatim` command line and the Discord bot. Both only call into `index`."""
