"""One manager per catalog resource: each parses nothing, checks access, runs jobs and commits."""
