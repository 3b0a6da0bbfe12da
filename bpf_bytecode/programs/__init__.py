"""Program builders: layout facts and map fds in, instruction lists out.

Every program ends with the label OUT: `r0 = 0; exit`. Fragments are given it as their way
out (a filtered-out call, a failed lookup); the context readers an attach family passes in
(`match`, `load_ret`) jump to it too.
"""

OUT = "out"
