"""What a person reads: report.html, its charts and templates, the table, progress, diff."""
