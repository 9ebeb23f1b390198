"""CLI subcommands. Each module exposes ``add_arguments(parser)`` and ``async run(args)``;
heavy imports happen inside ``run`` so that ``liqbot --help`` stays fast."""
