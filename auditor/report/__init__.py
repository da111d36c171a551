"""Reports: render findings to self-contained HTML and a static index (signing and verification live alongside)."""
