"""The browser's side: the pages and JSON API, the lessons and their verdicts, the servers that serve them, and the
security that keeps them on this machine; static files and page templates beside them."""
