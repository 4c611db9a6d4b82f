// Package api holds the contract of the public HTTP API: the OpenAPI 3.1 document that the
// gateway serves at GET /v1/openapi.json and that its tests check the server against.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the public API, as JSON.
//
//go:embed openapi.json
var OpenAPI []byte
