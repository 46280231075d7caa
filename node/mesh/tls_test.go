package mesh

import "crypto/tls"

type tlsState = tls.ConnectionState
