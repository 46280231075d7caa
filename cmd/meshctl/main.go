// Command meshctl controls a running meshd node through its admin HTTP/JSON
// API (listen.admin).
//
//	meshctl [-admin HOST:PORT] [-json] status | reload
//	meshctl -version
//	meshctl [-admin HOST:PORT] [-json] queue list [-held | -active] [-limit N]
//	meshctl [-admin HOST:PORT] [-json] queue show ID
//	meshctl [-admin HOST:PORT] [-json] queue retry|hold|release|delete ID
//	meshctl [-admin HOST:PORT] [-json] members | routes
//	meshctl [-admin HOST:PORT] [-json] lsdb [-from HOST:PORT]
//	meshctl [-admin HOST:PORT] [-json] trace [-id MSGID] ADDRESS
//	meshctl [-admin HOST:PORT] [-json] connector up|down|drain NAME
//	meshctl [-admin HOST:PORT] [-json] track [-wait DURATION] MESSAGE-ID
//	meshctl [-admin HOST:PORT] graph [-svg]
//
// Output is a table for people, or the API's JSON with -json. `lsdb -from`
// reads a node's port-691 link-state listener directly (channel.Dump), with
// no admin API involved. meshctl decodes the API with package adminapi and
// never imports the node (nor the status page's Graphviz). Exit status:
// 0 success, 1 the node answered with an error or the thing asked for is
// unknown, 2 usage error, 3 the node could not be reached.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
