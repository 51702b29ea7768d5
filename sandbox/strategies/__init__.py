"""How each send mode is wired to the student's functions (the pool, the queue, a worker's ending), what each
promises, and the delivery log that keeps every accepted email accounted for."""
