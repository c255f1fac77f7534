"""One module per ``nrstream`` sub-command; each exposes ``add_parser(subparsers)``."""
