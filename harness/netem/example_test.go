package netem_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/meshd/meshd/harness/netem"
)

func Example() {
	nw := netem.New(netem.Options{Seed: 42})
	defer nw.Close()
	n1, n2 := nw.Host("n1"), nw.Host("n2")

	ln, err := n2.Listen("tcp", "127.0.0.1:0") // n2's SMTP listener, say
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	try := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := n1.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			fmt.Println("dial:", errors.Is(err, netem.ErrLinkDown), errors.Is(err, syscall.ECONNREFUSED))
			return
		}
		owner, _ := nw.Owner(c.RemoteAddr().String())
		fmt.Println("connected to", owner)
		c.Close()
	}

	try()
	nw.Cut("n1", "n2")
	try()
	nw.Heal("n1", "n2")
	try()
	for _, ev := range nw.Events() {
		fmt.Println(ev.Kind, ev.A, ev.B)
	}
	s := nw.LinkStats("n1", "n2")
	fmt.Println("opened", s.ConnsOpened, "refused", s.ConnsRefused)
	// Output:
	// connected to n2
	// dial: true true
	// connected to n2
	// cut n1 n2
	// heal n1 n2
	// opened 2 refused 1
}
