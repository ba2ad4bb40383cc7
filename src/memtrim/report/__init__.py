"""Reports: terminal summaries, JSON, Markdown and HTML."""
