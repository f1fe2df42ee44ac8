"""The compiler: a pure function from a loaded document to output bytes.

Stages, in order: interpolate (${VAR} from a given environment) → validate/ (schema, then
semantic checks; files the project names are read through the reader it is given) →
plan (names, ports, addresses, instances) → render/ (units, launch scripts, cloud-init) →
compiler (the output files and the lock). Nothing here opens files, reads the clock or
the environment, or runs processes: load/ reads, emit/ writes, host/ runs.
"""
