// Package deploy holds the container deployment of the platform and the tests that check it
// without Docker: docker-compose.yml (the whole platform, distributed, with the LGTM
// observability stack), nginx/ (the load balancer in front of the gateways, configured for
// Server-Sent Events) and, at the repository root, the Dockerfile and .dockerignore.
//
// The tests load the Compose file with the Compose specification's Go loader and the
// Dockerfile with BuildKit's parser, and hold them to what the binary expects: every variable
// a container sets is one the binary reads, every service's configuration passes the binary's
// own validation, every long-running container is health checked, the migration jobs complete
// before the services that need them. The integration tier also proves that
// scripts/add-service.sh scaffolds a service that builds and passes its tests, and that
// scripts/remove-service.sh takes it out again without a trace.
package deploy
