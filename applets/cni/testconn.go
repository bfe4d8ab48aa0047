package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/onecalico/calico/internal/cniipam"
	"github.com/onecalico/calico/internal/kv"
)

// TestConnection is `calico -t`, upstream's datastore connection test for
// the CNI binary: it reads the netconf from stdin, connects to its
// datastore and reads ClusterInformation. It exits 0 when the datastore
// answers (saying on stderr if it is not initialised yet), and 1 with the
// reason on stdout, as upstream prints it, when it does not.
func TestConnection(args []string) int {
	env := cniipam.Env{Getenv: os.Getenv, Stderr: os.Stderr, ReadFile: os.ReadFile, Hostname: os.Hostname}
	if err := testConnection(env, os.Stdin); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
}

func testConnection(env cniipam.Env, stdin io.Reader) error {
	conf, err := io.ReadAll(stdin)
	if err != nil {
		return fmt.Errorf("read the netconf from stdin: %w", err)
	}
	s, err := cniipam.Open(env, component, conf)
	if err != nil {
		return errors.New(cniMsg(err))
	}
	defer s.Close()
	if err := s.Connect(); err != nil {
		return errors.New(cniMsg(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	_, err = s.Store.Get(ctx, clusterInfoKey())
	switch {
	case errors.Is(err, kv.ErrNotFound):
		fmt.Fprintf(env.Stderr, "calico: the datastore answers, but %s\n", notInitialised)
		return nil
	case err != nil:
		return fmt.Errorf("the datastore does not answer: %w", err)
	}
	return nil
}

// cniMsg is the message of a CNI error, or the error's text.
func cniMsg(err error) string {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Msg
	}
	return err.Error()
}
