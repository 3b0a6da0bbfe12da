"""Program builders: layout facts and map fds in, instruction lists out."""
