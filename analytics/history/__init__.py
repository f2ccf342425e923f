"""Live equals history: the profile rules run over the lake with DuckDB.

``verify(con, rules, live_read, as_of_ms) -> Report`` compares the live profiles with what the
lake's events say they must be; :class:`History` is the rules over the lake (aggregates, tags,
score, tier as of a time). How CEL becomes SQL is in ``cel_sql.py`` (what translates, what the
CEL runtime evaluates over rows instead); what history reproduces of the stream, and what by
design it does not, in ``base.py``, ``aggregates.py``, ``tags.py`` and ``replay.py``.
"""

from analytics.history.state import History, HistoryProfile
from analytics.history.verify import Difference, LiveRead, Report, verify

__all__ = ["Difference", "History", "HistoryProfile", "LiveRead", "Report", "verify"]
