"""Running whole workflows: cache, executor, progress, reports."""
