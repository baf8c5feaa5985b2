package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/lghs/lghsctl/appstack"
)

// ComposeApp is the target's compose stack (appstack) as the data move
// and the ladder see it: the app service, which must stay stopped while
// data moves, and the database service.
type ComposeApp struct {
	Ops        appstack.Ops
	AppService string
	DBService  string
	// Healthy bounds the wait for the database after an image change
	// (default 5 minutes).
	Healthy time.Duration
}

// NewComposeApp builds it from a stack, finding the services by role.
func NewComposeApp(h Host, s *appstack.Stack) (*ComposeApp, error) {
	app, ok := s.Service("app")
	if !ok {
		return nil, fmt.Errorf("the compose project %s has no service with role app", s.Project)
	}
	db, ok := s.Service("database")
	if !ok {
		return nil, fmt.Errorf("the compose project %s has no service with role database", s.Project)
	}
	return &ComposeApp{Ops: appstack.Ops{Host: h, Stack: s}, AppService: app.Name, DBService: db.Name}, nil
}

func (c *ComposeApp) StopApp(ctx context.Context) error {
	return c.Ops.Stop(ctx, c.AppService)
}

func (c *ComposeApp) SetAppImage(ctx context.Context, image string) error {
	return c.Ops.SetImage(ctx, c.AppService, image)
}

func (c *ComposeApp) SetDatabaseImage(ctx context.Context, image string) error {
	if err := c.Ops.SetImage(ctx, c.DBService, image); err != nil {
		return err
	}
	d := c.Healthy
	if d <= 0 {
		d = 5 * time.Minute
	}
	return c.Ops.WaitHealthy(ctx, d, c.DBService)
}

func (c *ComposeApp) AppLogs(ctx context.Context, since time.Time, tail int) (string, error) {
	return c.Ops.Logs(ctx, c.AppService, since, tail)
}

// AppRunning reports whether the app's container runs (the data move
// refuses to start while it does: the app would re-index during the
// restore and run out of memory, as the runbook found).
func (c *ComposeApp) AppRunning(ctx context.Context) (bool, error) {
	cs, err := c.Ops.Containers(ctx)
	if err != nil {
		return false, err
	}
	st := cs[c.AppService].State
	return st == "running" || st == "restarting", nil
}

// ExecPrefix is the command prefix that runs a command in the database
// container with stdin attached (mongorestore mode).
func (c *ComposeApp) ExecPrefix() []string {
	return []string{"docker", "compose", "-p", c.Ops.Stack.Project, "-f", c.Ops.Stack.ComposeFile(), "exec", "-T", c.DBService}
}
