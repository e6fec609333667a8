// Package validate holds the tests of deploy/: job.yaml decoded strictly
// into the Kubernetes API types and checked for what an Indexed Job of
// synprobe needs, its arguments run by the synprobe binary the image holds,
// and that binary checked to be static (deploy/Dockerfile puts it FROM
// scratch). It is a module of its own so that synprobe's go.mod does not
// carry the Kubernetes API; `make test` runs it.
package validate
