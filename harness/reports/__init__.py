"""Reports of a run, each built from its results.json: Markdown, HTML, JUnit, console."""
