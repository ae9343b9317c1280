"""`deepprompt-serve`: several tasks' prompts on one frozen backbone over HTTP, batched across tasks."""
