"""The operator console (`vahini console`): the registry, the model graphs drawn, `Try
it` against the gRPC server, live lag and freshness, and the dead letters with a
re-drive, in a browser. It sits on top, beside the CLI: it reads through the core's
ports and calls the programs' functions, and nothing imports it."""
