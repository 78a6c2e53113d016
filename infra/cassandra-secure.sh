#!/usr/bin/env bash
# The secured profile's Cassandra: PasswordAuthenticator, CassandraAuthorizer and
# client-to-node TLS on 127.0.0.1:9142 (see infra/cassandra.sh).
VAHINI_CASSANDRA_PROFILE=secure exec bash "$(dirname "${BASH_SOURCE[0]}")/cassandra.sh" "$@"
