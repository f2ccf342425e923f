"""Questions answered from the lake's history with DuckDB: live state checked and seeded from it
(verify, backfill), and the marketing analytics (RFM, attribution, funnels, retention, activation,
the report).

A floor of its own, above ``connectors`` (it reads the lake through ``connectors.lake.query``)
and below ``apps`` (the CLI wires it to Settings).
"""
