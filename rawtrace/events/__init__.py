"""Events: the catalogue of declarations, the Event objects, decoding, the stall alarm, the
vfork watch and the events a kernel tracepoint feeds."""
