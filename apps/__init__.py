"""The top floor: Touchstream's processes and their wiring.

``cli`` (the ``touchstream`` command), ``server`` + ``api`` (HTTP collector and read/admin API,
``openapi.yaml``), ``demo``, and ``factory``: the only module that builds graphs, stores,
limits, keys and producers from Settings. Nothing below imports this package.
"""
