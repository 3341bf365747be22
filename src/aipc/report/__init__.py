"""``aipc report``: the one-command answer for this machine and a workload, as a self-contained HTML page.

    from aipc.report import ReportOptions, collect, write_report
    data = collect(ReportOptions())            # profile, bench, estimate, decide (embedded defaults)
    paths = write_report(data, "aipc-report")  # index.html + report.json

The page is rendered from the data dict alone (``render_page(data)``), so a saved ``report.json``
re-renders the same page without measuring anything.
"""

from aipc.report.collect import ReportOptions, collect  # noqa: F401
from aipc.report.html import render_page, write_report  # noqa: F401
