package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/provision"
)

// newSnapshot is `lghsctl snapshot`: image backups of an instance.
func newSnapshot(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Image backups of an instance: create, list, restore as a clone, prune",
		Long: `snapshot manages image backups of the inventory's servers, the way the LgHS
runbook did before every risky step ("create an image" in the console), and
restores them as new servers. Images and their snapshots are tagged
lghsctl=<inventory>, lghsctl-host=<host> and lghsctl-backup; only those are
listed, restored or pruned.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSnapshotCreate(g), newSnapshotList(g), newSnapshotRestore(g), newSnapshotPrune(g))
	return cmd
}

// hostArg returns the host named on the command line, or the inventory's
// only Scaleway host.
func (s *cloudSession) hostArg(args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	var hosts []string
	for _, h := range s.f.Hosts {
		if h.Provider == "scaleway" {
			hosts = append(hosts, h.Name)
		}
	}
	if len(hosts) != 1 {
		return "", usageError{fmt.Errorf("name the host: the inventory has %d Scaleway hosts %v", len(hosts), hosts)}
	}
	return hosts[0], nil
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MaximumNArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

type snapshotCreateOptions struct {
	*Globals
	Name string
}

func newSnapshotCreate(g *Globals) *cobra.Command {
	o := &snapshotCreateOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "create [HOST]",
		Short: "Take an image of every volume of a host's server and wait until it is complete",
		Long: `create takes an image of all the volumes of the host's server (the host may be
left out when the inventory has only one), tags it and its snapshots, and
waits until every snapshot is available: Scaleway reports the image
available at once, long before its data is copied. The server keeps
running. The name defaults to <host>-<UTC date>-<time>.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args) },
	}
	cmd.Flags().StringVar(&o.Name, "name", "", "name of the image")
	return cmd
}

func (o *snapshotCreateOptions) run(ctx context.Context, args []string) error {
	s, err := o.openCloud(ctx, "snapshot-create", &cloudNeeds{noDNS: true})
	if err != nil {
		return err
	}
	defer s.close()
	host, err := s.hostArg(args)
	if err != nil {
		return err
	}
	s.tally.Play("snapshot create")
	if o.Check {
		s.tally.Plan("snapshot", []report.Change{{Action: report.Create, Kind: "image", Name: nameOr(o.Name, provision.BackupName(host, time.Now())), Detail: "backup of " + host}})
		return s.finish(nil, true)
	}
	var b provision.Backup
	runner := &task.Runner{Reporter: s.tally, Log: s.logf.Logger}
	err = runner.Run(ctx, []task.Target{{Name: host, Steps: []task.Step{{Name: "backup", Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
		var err error
		b, err = s.prov.CreateBackup(ctx, host, o.Name)
		if err != nil {
			return task.Result{}, err
		}
		return task.Changedf("image %s (%s), %s, %d snapshot(s) available", b.Name, b.ImageID, provision.HumanSize(b.Size), len(b.Snapshots)), nil
	}}}}})
	return s.finish(err, false)
}

func nameOr(name, def string) string {
	if name != "" {
		return name
	}
	return def
}

type snapshotListOptions struct {
	*Globals
}

func newSnapshotList(g *Globals) *cobra.Command {
	o := &snapshotListOptions{Globals: g}
	return &cobra.Command{
		Use:   "list [HOST]",
		Short: "List the backups lghsctl made, newest first, with size and age",
		Args:  maxArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args) },
	}
}

func (o *snapshotListOptions) run(ctx context.Context, args []string) error {
	s, err := o.openCloud(ctx, "snapshot-list", &cloudNeeds{noDNS: true})
	if err != nil {
		return err
	}
	defer s.close()
	host := ""
	if len(args) == 1 {
		host = args[0]
	}
	bs, err := s.prov.Backups(ctx, host)
	if err != nil {
		return s.finish(err, true)
	}
	if o.JSON {
		if bs == nil {
			bs = []provision.Backup{}
		}
		_ = json.NewEncoder(o.Out).Encode(struct {
			Type    string             `json:"type"`
			Backups []provision.Backup `json:"backups"`
		}{"backups", bs})
		return nil
	}
	if len(bs) == 0 {
		fmt.Fprintln(o.Out, "no backups")
		return nil
	}
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOST\tZONE\tSIZE\tAGE\tSTATE\tIMAGE")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.Host, b.Zone, provision.HumanSize(b.Size),
			provision.HumanAge(time.Since(b.Created)), b.State, b.ImageID)
	}
	return tw.Flush()
}

type snapshotRestoreOptions struct {
	*Globals
	As string
}

func newSnapshotRestore(g *Globals) *cobra.Command {
	o := &snapshotRestoreOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "restore IMAGE --as NAME",
		Short: "Create a new server from a backup, with its own IPs, security group and technical DNS name",
		Long: `restore creates the server NAME from a backup image (its name or id), like the
runbook's lghs-chat-test clone: the backup's host's type and security group,
its own IPv4 and IPv6, and the host's technical DNS names with their first
label replaced by NAME (lghs-chat-prod.lghs.space → NAME.lghs.space). Public
names stay with the host. The clone is not in the inventory: up leaves it
alone, lghsctl destroy NAME removes it. The plan is shown first, as with up.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args[0]) },
	}
	cmd.Flags().StringVar(&o.As, "as", "", "name of the new server (required)")
	return cmd
}

func (o *snapshotRestoreOptions) run(ctx context.Context, image string) error {
	if o.As == "" {
		return usageError{fmt.Errorf("restore needs --as NAME, the name of the new server")}
	}
	s, err := o.openCloud(ctx, "snapshot-restore", &cloudNeeds{dnsAlways: true})
	if err != nil {
		return err
	}
	defer s.close()
	s.tally.Play("restore " + image + " as " + o.As)
	pl, err := s.prov.PlanRestore(ctx, image, o.As)
	if err != nil {
		return s.finish(err, o.Check)
	}
	s.showPlan(pl)
	if pl.Blocked() {
		s.tally.Message(report.Error, "the plan has blocked changes (marked !); nothing was changed")
		return s.finish(silentError{ExitFailure, provision.ErrBlocked}, o.Check)
	}
	if o.Check {
		return s.finish(nil, true)
	}
	out, err := s.prov.Apply(ctx, pl)
	for _, h := range out.Hosts {
		s.tally.Message(report.Info, describeHost(h))
	}
	return s.finish(err, false)
}

type snapshotPruneOptions struct {
	*Globals
	Keep int
}

func newSnapshotPrune(g *Globals) *cobra.Command {
	o := &snapshotPruneOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "prune --keep N [HOST]",
		Short: "Delete all but the N newest backups of each host (or of HOST)",
		Long: `prune deletes the backups beyond the N newest of each host, image and
snapshots (deleting only the image would leave the snapshots, which are what
Scaleway bills). N is at least 1: prune never deletes a host's last backup.
With --check it only shows what it would delete.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args) },
	}
	cmd.Flags().IntVar(&o.Keep, "keep", 0, "how many backups to keep per host (at least 1)")
	return cmd
}

func (o *snapshotPruneOptions) run(ctx context.Context, args []string) error {
	if o.Keep < 1 {
		return usageError{fmt.Errorf("prune needs --keep N with N at least 1 (a host's last backup is never pruned)")}
	}
	s, err := o.openCloud(ctx, "snapshot-prune", &cloudNeeds{noDNS: true})
	if err != nil {
		return err
	}
	defer s.close()
	host := ""
	if len(args) == 1 {
		host = args[0]
	}
	s.tally.Play("snapshot prune")
	drop, changes, err := s.prov.PlanPrune(ctx, host, o.Keep)
	if err != nil {
		return s.finish(err, o.Check)
	}
	s.tally.Plan("prune", changes)
	if o.Check || len(drop) == 0 {
		return s.finish(nil, o.Check)
	}
	byHost := map[string][]provision.Backup{}
	var order []string
	for _, b := range drop {
		if _, ok := byHost[b.Host]; !ok {
			order = append(order, b.Host)
		}
		byHost[b.Host] = append(byHost[b.Host], b)
	}
	var targets []task.Target
	for _, h := range order {
		var steps []task.Step
		for _, b := range byHost[h] {
			steps = append(steps, task.Step{Name: "delete backup " + b.Name, Run: func(ctx context.Context, _ task.Env) (task.Result, error) {
				if err := s.prov.DeleteBackup(ctx, b); err != nil {
					return task.Result{}, err
				}
				return task.Changedf("image and %d snapshot(s) deleted", len(b.Snapshots)), nil
			}})
		}
		targets = append(targets, task.Target{Name: h, Steps: steps})
	}
	runner := &task.Runner{Reporter: s.tally, Log: s.logf.Logger}
	return s.finish(runner.Run(ctx, targets), false)
}
