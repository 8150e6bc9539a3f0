package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/app"
	"github.com/df-middleware/df-middleware/internal/config"
	"github.com/df-middleware/df-middleware/internal/mcpctx"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/resources"
	"github.com/df-middleware/df-middleware/tools"
)

// mcpFlags are the flags of `df-middleware mcp`; the environment gives the
// defaults (DF_MCP_TOOLSETS, DF_MCP_READ_ONLY).
type mcpFlags struct {
	noSidecar bool
	toolsets  string
	readOnly  bool
}

func parseMCPFlags(args []string, cfg config.Config, stderr io.Writer) (mcpFlags, error) {
	f := mcpFlags{toolsets: strings.Join(cfg.MCPToolsets, ","), readOnly: cfg.MCPReadOnly}
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.noSidecar, "no-sidecar", false, "serve MCP only: no webhook listener, no workers")
	fs.StringVar(&f.toolsets, "toolsets", f.toolsets, "comma-separated toolsets to expose ("+strings.Join(tools.ToolsetNames(), ", ")+", or all)")
	fs.BoolVar(&f.readOnly, "read-only", f.readOnly, "register no tool that changes anything")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return f, nil
}

func toolOptions(toolsets string, readOnly bool) tools.Options {
	var sets []string
	for _, s := range strings.Split(toolsets, ",") {
		if s = strings.TrimSpace(s); s != "" {
			sets = append(sets, s)
		}
	}
	return tools.Options{Toolsets: sets, ReadOnly: readOnly}
}

// newMCPServer builds the MCP server over a running service: the selected
// tools, every resource and prompt, and the server's instructions.
func newMCPServer(svc *app.Service, opts tools.Options, log zerolog.Logger) (*server.MCPServer, error) {
	serverOpts := []server.ServerOption{
		// Outermost: the span "mcp tool <name>" (continuing a traceparent
		// in _meta) covers everything below, metrics included.
		server.WithToolHandlerMiddleware(observe.MCPToolTracing()),
		// Next, so it is outside recovery: it sees a recovered panic as an error.
		server.WithToolHandlerMiddleware(svc.Metrics.MCPToolMiddleware()),
		server.WithToolHandlerMiddleware(toolErrorGroups(svc)),
		server.WithToolCapabilities(false),
		server.WithResourceCapabilities(true, true),
		server.WithPromptCapabilities(true),
		server.WithCompletions(),
		server.WithRecovery(),
		server.WithLogger(observe.Slog(observe.Component(log, "mcp"))),
		server.WithInstructions(tools.Instructions(opts)),
	}
	// Completion providers and subscription hooks can only be given at
	// construction in mcp-go.
	serverOpts = append(serverOpts, resources.ServerOptions()...)
	s := server.NewMCPServer("df-middleware", buildVersion(), serverOpts...)
	var broadcasts tools.Broadcasts
	if svc.Upstreams.Verity != nil {
		broadcasts = svc.Upstreams.Verity
	}
	names, err := tools.Register(s, tools.Deps{
		Store: svc.Store, Runner: svc.Runner, Health: svc.Health, Verity: broadcasts,
		Registry: svc.Registry, Log: observe.Component(log, "mcp-tools"),
	}, opts)
	if err != nil {
		return nil, err
	}
	svc.Metrics.AddMCPTools(names)
	if err := resources.Register(s, resourcesDeps(svc, log)); err != nil {
		return nil, err
	}
	log.Info().Int("tools", len(names)).Bool("read_only", opts.ReadOnly).Strs("toolsets", opts.Toolsets).Msg("MCP server ready")
	return s, nil
}

// toolErrorGroups counts tool calls that fail (a Go error or a panic, not an
// isError answer to bad arguments) in error_groups under "mcp".
func toolErrorGroups(svc *app.Service) server.ToolHandlerMiddleware {
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
			defer func() {
				if p := recover(); p != nil {
					svc.ErrorGroups.Record(ctx, "mcp", fmt.Errorf("tool %s panicked: %v", req.Params.Name, p), "")
					panic(p) // WithRecovery turns it into an error answer
				}
				if err != nil {
					svc.ErrorGroups.Record(ctx, "mcp", fmt.Errorf("tool %s: %w", req.Params.Name, err), "")
				}
			}()
			return next(ctx, req)
		}
	}
}

func resourcesDeps(svc *app.Service, log zerolog.Logger) resources.Deps {
	return resources.Deps{Store: svc.Store, Health: svc.Health, Registry: svc.Registry, Log: observe.Component(log, "mcp-resources")}
}

// mountMCPHTTP serves the MCP server at /mcp of the sidecar (streamable
// HTTP). The sidecar's auth middleware has put the caller in the request
// context; it is carried into the tool calls for the audit log. mcp-go's
// DNS-rebinding protection stays on.
func mountMCPHTTP(ctx context.Context, svc *app.Service, log zerolog.Logger) error {
	cfg := svc.Config
	if err := app.CheckMCPExposure(cfg); err != nil {
		return err
	}
	s, err := newMCPServer(svc, toolOptions(strings.Join(cfg.MCPToolsets, ","), cfg.MCPReadOnly), log)
	if err != nil {
		return err
	}
	h := server.NewStreamableHTTPServer(s,
		server.WithEndpointPath("/mcp"),
		server.WithStreamableHTTPLogger(observe.Slog(observe.Component(log, "mcp-http"))),
		server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
			return mcpctx.WithCaller(ctx, mcpctx.CallerFrom(r.Context()))
		}),
	)
	svc.MountMCP(h)
	go resources.Watch(ctx, s, resourcesDeps(svc, log), 2*time.Second)
	if !app.MCPAuthConfigured(cfg) {
		log.Warn().Msg("MCP over HTTP at /mcp is open to anyone on this machine: set DF_MCP_HTTP_TOKEN to require a token")
	}
	return nil
}

// serveMCPStdio runs `df-middleware mcp`: MCP on stdin/stdout, and unless
// --no-sidecar the sidecar (webhooks, workers, admin, health) in the same
// process. Stdout carries nothing but MCP; every log line goes to stderr.
func serveMCPStdio(ctx context.Context, cfg config.Config, args []string, stdin io.Reader, stdout, stderr io.Writer, log zerolog.Logger) error {
	flags, err := parseMCPFlags(args, cfg, stderr)
	if err != nil {
		return err
	}
	svc, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sidecar sync.WaitGroup
	if flags.noSidecar {
		defer svc.Store.Close()
		defer svc.ErrorGroups.Close(5 * time.Second) // Run does it when the sidecar runs
	} else {
		ln, err := app.Listen(cfg)
		if err != nil {
			svc.Store.Close()
			return err
		}
		sidecar.Go(func() {
			if err := svc.Run(ctx, ln); err != nil {
				log.Error().Err(err).Msg("sidecar stopped")
			}
		})
	}
	s, err := newMCPServer(svc, toolOptions(flags.toolsets, flags.readOnly), log)
	if err != nil {
		cancel()
		sidecar.Wait()
		return err
	}
	go resources.Watch(ctx, s, resourcesDeps(svc, log), 2*time.Second)

	stdio := server.NewStdioServer(s)
	stdio.SetErrorLogger(stdlog.New(observe.LineWriter{L: observe.Component(log, "mcp-stdio"), Level: zerolog.ErrorLevel}, "", 0))
	stdio.SetContextFunc(func(ctx context.Context) context.Context {
		return mcpctx.WithCaller(ctx, mcpctx.Caller{Interface: mcpctx.Stdio, Name: "local"})
	})
	log.Info().Bool("sidecar", !flags.noSidecar).Msg("MCP over stdio")
	err = stdio.Listen(ctx, stdin, stdout)
	cancel() // the client went away or a signal came: stop the sidecar too
	sidecar.Wait()
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
