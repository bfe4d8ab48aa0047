// Package server is the etcd server behind `calico etcd`: an etcd member
// (go.etcd.io/etcd/server/v3/embed) with the flags a person needs. Alone it
// is a single-member etcd; with --initial-cluster (etcd's own flag names
// and meanings) it is one member of a statically bootstrapped cluster, and
// the TLS flags give it client (and peer) certificates as etcd's do.
//
// It is linked only into the small program in ../serverprog, which the main
// binary carries compressed and executes when `calico etcd` runs (see the
// parent package for why).
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Main runs the server until SIGTERM or SIGINT, then stops it cleanly.
// args are the arguments after "calico etcd".
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Stderr, args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "calico etcd: %v\n", err)
		return 1
	}
	return 0
}

type options struct {
	name, dataDir, logLevel       string
	listenClient, advertiseClient string
	listenPeer                    string
	quotaBytes                    int64
	autoCompactionRetention       string
	heartbeatMS, electionMS       uint
	enablePprof                   bool
	cluster                       clusterOptions
}

func run(ctx context.Context, stderr io.Writer, args []string) error {
	var o options
	fs := pflag.NewFlagSet("calico etcd", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.name, "name", "calico", "member name")
	fs.StringVar(&o.dataDir, "data-dir", "calico.etcd", "directory for the database and write-ahead log")
	fs.StringVar(&o.listenClient, "listen-client-urls", "http://127.0.0.1:2379", "comma-separated URLs to serve clients on")
	fs.StringVar(&o.advertiseClient, "advertise-client-urls", "", "URLs to advertise to clients (default: the listen URLs)")
	fs.StringVar(&o.listenPeer, "listen-peer-urls", "http://127.0.0.1:2380", "comma-separated URLs to serve peers (other members) on")
	fs.StringVar(&o.logLevel, "log-level", "error", "etcd log level: debug, info, warn, error")
	fs.Int64Var(&o.quotaBytes, "quota-backend-bytes", 0, "backend size quota in bytes (0 = etcd's default)")
	fs.StringVar(&o.autoCompactionRetention, "auto-compaction-retention", "1h", "keep this much history (periodic compaction)")
	fs.UintVar(&o.heartbeatMS, "heartbeat-interval", 100, "time (in milliseconds) of a heartbeat interval")
	fs.UintVar(&o.electionMS, "election-timeout", 1000, "time (in milliseconds) for an election to timeout")
	fs.BoolVar(&o.enablePprof, "enable-pprof", false, "serve runtime profiling data under /debug/pprof on the client URLs")
	o.cluster.addFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: calico etcd [flags]\n\nRuns an embedded etcd server: a single member, or with --initial-cluster one member\nof a static cluster (etcd's flags and meanings).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	// etcd logs every listener it closes at error level on a normal stop;
	// raise the level before closing so a clean stop prints only our line.
	level := zap.NewAtomicLevel()
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(stderr), level))
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer func() {
		level.SetLevel(zapcore.FatalLevel)
		e.Close()
	}()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintf(stderr, "calico etcd: ready, serving clients on %s (data in %s)\n", o.listenClient, o.dataDir)
	case err := <-e.Err():
		return fmt.Errorf("start: %w", err)
	case <-time.After(60 * time.Second):
		return errors.New("not ready after 60s")
	case <-ctx.Done():
		return nil
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "calico etcd: stopping")
		return nil
	case err := <-e.Err():
		return fmt.Errorf("server failed: %w", err)
	}
}

func parseURLs(flag, s string) ([]url.URL, error) {
	var out []url.URL
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		u, err := url.Parse(p)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("--%s: %q is not a URL like http://127.0.0.1:2379", flag, p)
		}
		out = append(out, *u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: at least one URL is required", flag)
	}
	return out, nil
}

func (o options) config() (*embed.Config, error) {
	cfg := embed.NewConfig()
	cfg.Name = o.name
	cfg.Dir = o.dataDir
	cfg.QuotaBackendBytes = o.quotaBytes
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = o.autoCompactionRetention
	cfg.TickMs, cfg.ElectionMs, cfg.EnablePprof = o.heartbeatMS, o.electionMS, o.enablePprof
	var err error
	if cfg.ListenClientUrls, err = parseURLs("listen-client-urls", o.listenClient); err != nil {
		return nil, err
	}
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	if o.advertiseClient != "" {
		if cfg.AdvertiseClientUrls, err = parseURLs("advertise-client-urls", o.advertiseClient); err != nil {
			return nil, err
		}
	}
	if cfg.ListenPeerUrls, err = parseURLs("listen-peer-urls", o.listenPeer); err != nil {
		return nil, err
	}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	cfg.ListenMetricsUrls = nil
	if err := o.cluster.apply(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}
