"""The record and what is read from it: the tracer (events, traces, the binding that carries a trace to each thread),
then facts, steps, key moments, quiz and timeline, each derived from the events, never typed in."""
