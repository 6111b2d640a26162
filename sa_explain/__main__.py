"""``python -m sa_explain`` is the ``sa-explain`` command."""

from sa_explain.cli import main

raise SystemExit(main())
