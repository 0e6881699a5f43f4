"""Jobs: the task functions that call the engine, and the runner that executes them."""
