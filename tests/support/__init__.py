"""What the tests share: servers' test databases, clients of the entry points, tokens, the
loopback stand-ins of third-party services, and the runners (`tests.support.mutants`,
`tests.support.concurrent_runs`)."""
