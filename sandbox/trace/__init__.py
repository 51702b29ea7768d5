"""The record and what is read from it: the tracer and the hooks that feed it from outside the student's code, then
facts, steps, key moments, quiz and timeline, each derived from the events, never typed in."""
