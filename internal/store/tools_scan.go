package store

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The MCP tools page through tables of millions of rows. Their listings are
// keyset-paginated on an indexed order, and every filter the order's index
// cannot serve is applied to a capped scan: at most ScanCap rows in that
// order are examined per call, and when the cap ends a page early the page
// says so (ScanLimited) and its cursor resumes where the scan stopped. A
// call therefore costs at most ScanCap rows whatever the table size and
// however rare the match.

// DefaultScanCap is how many rows one listing call examines at most.
const DefaultScanCap = 10_000

// cappedScan builds
//
//	SELECT <cols>, matched, rn FROM (
//	  SELECT t.*, row_number() OVER (ORDER BY <order>) AS rn, (<outer>) AS matched
//	  FROM (SELECT * FROM <table> WHERE <inner> ORDER BY <order> LIMIT cap) t) s
//	WHERE matched OR rn = cap LIMIT limit+2
//
// The inner query walks an index (the inner conditions are the ones an index
// serves); the window function and the filter are evaluated as rows stream
// out, so the scan stops as soon as limit+1 matches are found. The row
// numbered cap is returned even when it does not match: it marks where a
// capped scan stopped.
type cappedScan struct {
	table string
	cols  string // select list over the subquery's columns
	order string // e.g. "received_at DESC, id DESC"
	inner []string
	outer []string
	args  []any
}

func (c *cappedScan) arg(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

func (c *cappedScan) sql(limit, scanCap int) string {
	innerWhere := ""
	if len(c.inner) > 0 {
		innerWhere = " WHERE " + strings.Join(c.inner, " AND ")
	}
	matched := "true"
	if len(c.outer) > 0 {
		matched = strings.Join(c.outer, " AND ")
	}
	capArg := c.arg(scanCap)
	limitArg := c.arg(limit + 2)
	return fmt.Sprintf(`SELECT %s, s.matched, s.rn FROM (
		SELECT t.*, row_number() OVER (ORDER BY %s) AS rn, (%s) AS matched
		FROM (SELECT * FROM %s%s ORDER BY %s LIMIT %s) t) s
	WHERE s.matched OR s.rn = %s
	LIMIT %s`, c.cols, c.order, matched, c.table, innerWhere, c.order, capArg, capArg, limitArg)
}

// pageOf turns the rows of a capped scan into a page: the first limit
// matches, the position to resume from, and whether the cap cut it short.
// pos gives a row's keyset position as a cursor.
func pageOf[T any](rows []T, matched []bool, rn []int64, limit, scanCap int, pos func(T) string) (page []T, next string, scanLimited bool) {
	page = make([]T, 0, min(len(rows), limit))
	for i, r := range rows {
		if !matched[i] {
			// The sentinel: the scan reached its cap before the page filled.
			return page, pos(r), true
		}
		if len(page) == limit {
			// One match more than the page holds: there is a next page.
			return page, pos(page[len(page)-1]), false
		}
		page = append(page, r)
		if rn[i] == int64(scanCap) {
			return page, pos(r), true
		}
	}
	return page, "", false
}

// Cursors of the tools' listings: an order value and a tie-breaker, base64
// so that a model passes them back unchanged.
func encodeKeyset(t time.Time, tie string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + "|" + tie))
}

func decodeKeyset(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ts, tie, ok := strings.Cut(string(raw), "|")
	if !ok || tie == "" {
		return time.Time{}, "", ErrBadCursor
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	return time.UnixMicro(us), tie, nil
}
