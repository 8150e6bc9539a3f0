package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// cmdExec runs each argument as SQL (simple protocol, so an argument may hold
// several statements). With -print it prints the first column of the first
// row of the last argument. The bench uses it to drop and create its
// database without depending on psql.
func cmdExec(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("exec", flag.ExitOnError)
	dbURL := fs.String("db", envOr("DATABASE_URL", ""), "database URL (default $DATABASE_URL)")
	printFirst := fs.Bool("print", false, "print the first value of the last statement's result")
	_ = fs.Parse(args)
	if *dbURL == "" {
		return errors.New("-db or DATABASE_URL is required")
	}
	conn, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	stmts := fs.Args()
	for i, sql := range stmts {
		if *printFirst && i == len(stmts)-1 {
			var v any
			if err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
			fmt.Println(v)
			continue
		}
		if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}
