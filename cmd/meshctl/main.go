// Command meshctl controls a running meshd node through its admin HTTP/JSON
// API (listen.admin).
//
//	meshctl [-admin HOST:PORT] [-json] status
//	meshctl [-admin HOST:PORT] [-json] queue list [-held | -active] [-limit N]
//	meshctl [-admin HOST:PORT] [-json] queue show ID
//	meshctl [-admin HOST:PORT] [-json] queue retry|hold|release|delete ID
//
// Output is a table for people, or the API's JSON with -json. Exit status:
// 0 success, 1 the node could not be reached or refused (e.g. unknown ID),
// 2 usage error.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
