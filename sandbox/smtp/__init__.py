"""The SMTP side: the sink (the student's handler with faults wrapped around it), its faults, and the client that
sends (Flask-Mail's classes with a timeout, reporting what they say and what a failure means)."""
