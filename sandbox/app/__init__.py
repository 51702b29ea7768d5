"""The student's code: the Flask app's email routes and the mail server's handler, as the lessons teach them.

Nothing in this folder records, counts or injects anything. The sandbox watches it from outside (Flask's signals,
Flask-Mail's connection, a hook on ``Thread.start``, the sink's fault wrapper), and every step of a trace points at
a line in these files: the code on screen is the code that ran.
"""
