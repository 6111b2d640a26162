"""Fleet-wide analysis of logged explanations: ``sa-explain analyze`` and ``sa-explain generate``.

One explained error helps one engineer; the questions that prevent the next incident
(which tables fail, replica lag or real races, how far behind the replicas were, which
payloads were submitted twice) need every explanation a fleet logged. This package reads
the ``sa_explain/1`` records back from JSON-lines logs and Sentry exports and answers
those questions with DuckDB (an optional extra: ``pip install 'sa-explain[cli]'``).

Modules: :mod:`.reader` (find and validate the records, load them into DuckDB),
:mod:`.reports` (the five reports), :mod:`.render` (table / JSON / CSV output),
:mod:`.plot` (causes over time as SVG, HTML or PNG), :mod:`.generate` (seeded synthetic
logs for tests and benchmarks), :mod:`.cli` (the subcommands).
"""
