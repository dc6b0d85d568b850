// Package deploy holds the deployment files of edgeproxy, not code:
// compose/ runs a whole fleet on one machine and k8s/ runs the edges in a
// cluster. No container engine runs on the development machines, so neither
// is started in tests; deploy_test.go instead checks that every port, probe,
// config key, environment variable, image name and user id in them agrees
// with config.yaml, the Dockerfile, the binary's own config check and each
// other.
package deploy
