"""The jobs' tasks: what a Dask worker (or the command line's in-process runner) runs.

Each task takes one typed input and returns one typed result, reports through a `Reporter`, and
never touches the database: the service records what it returns. A worker imports
`headstart.kernels` and nothing above it.
"""
