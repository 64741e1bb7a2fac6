package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"campusid/internal/cas"
	"campusid/internal/config"
	"campusid/internal/store"
)

const casServiceAbout = `Manage the CAS services (applications that sign people in through /cas/).

  cas-service add --id ID --name NAME --url PATTERN [--match exact|prefix|regex]
                  [--attributes uid,mail,...] [--proxy] [--logout-url URL] [--order N]
      Register a service. --match says how PATTERN meets the service URL an
      application sends: exact (the default, after normalising the encoding),
      prefix (on a path boundary) or regex (anchored). Attributes released by
      /cas/p3/serviceValidate: uid, mail, displayName, givenName, sn,
      eduPersonPrincipalName, supannEtablissement, memberOf. When several
      services match a URL, the lowest --order (default 0) answers; at equal
      order exact beats prefix (the longest first), which beats regex.
  cas-service update ID [the flags of add]
      Change what the flags given say; the others keep their value
      (--attributes "" releases none, --proxy=false withdraws proxying).
  cas-service list
  cas-service show ID
  cas-service delete ID
  cas-service match URL
      Tell which service answers for URL, and why others do not.
  cas-service import [--dry-run] FILE|DIR...
      Register the services of an Apereo CAS JSON service registry (one
      service per .json file; a directory is read whole). --dry-run shows
      what would be added and changes nothing. See docs/cas.md.

Services declared in the configuration file (cas.services) are managed there.`

func runCASService(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "cas-service", "cas-service <add|list|show|update|delete|match|import> [flags]", casServiceAbout)
	path := fs.String("config", "", "configuration file (YAML)")
	id := fs.String("id", "", "service id (add)")
	name := fs.String("name", "", "name shown to people")
	pattern := fs.String("url", "", "service URL pattern")
	match := fs.String("match", "exact", "exact, prefix or regex")
	attrs := fs.String("attributes", "", "attributes released, comma-separated")
	proxy := fs.Bool("proxy", false, "the service may ask for proxy tickets")
	logoutURL := fs.String("logout-url", "", "URL receiving single logout requests")
	order := fs.Int("order", 0, "evaluation order when several services match (lower first)")
	dryRun := fs.Bool("dry-run", false, "show what import would do, change nothing")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{"missing subcommand: add, list, show, update, delete, match or import"}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var list []string
	for a := range strings.SplitSeq(*attrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			list = append(list, a)
		}
	}
	sub, rest := pos[0], pos[1:]
	db, err := openCLI(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	one := func() (store.CASService, error) {
		if len(rest) != 1 {
			return store.CASService{}, usageError{"want exactly one service id"}
		}
		s, err := db.CASServiceByID(ctx, rest[0])
		if errors.Is(err, store.ErrNotFound) {
			return s, fmt.Errorf("no CAS service %q (see 'campusid cas-service list')", rest[0])
		}
		return s, err
	}
	switch sub {
	case "add":
		if len(rest) > 0 {
			return usageError{fmt.Sprintf("unexpected argument %q", rest[0])}
		}
		s, err := cas.ServiceSpec{ID: *id, Name: *name, URL: *pattern, Match: *match, Attributes: list, Proxy: *proxy,
			LogoutURL: *logoutURL, Order: *order}.Service()
		if err != nil {
			return invalidCASService(err)
		}
		now := e.now()
		s.Source, s.CreatedAt, s.UpdatedAt = store.ClientFromCLI, now, now
		if err := db.CreateCASService(ctx, s); errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("a CAS service with id %q exists already", s.ID)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "CAS service %s added\n", s.ID)
		return nil
	case "update":
		old, err := one()
		if err != nil {
			return err
		}
		if old.Source == store.ClientFromConfig {
			return fmt.Errorf("CAS service %q is declared in the configuration file (cas.services): change it there", old.ID)
		}
		if set["id"] && *id != old.ID {
			return usageError{"the id of a CAS service cannot change (delete it and add it again)"}
		}
		spec := cas.ServiceSpec{ID: old.ID, Name: old.Name, URL: old.URLPattern, Match: old.Match, Attributes: old.Attributes,
			Proxy: old.AllowProxy, LogoutURL: old.LogoutURL, Order: old.Order}
		if set["name"] {
			spec.Name = *name
		}
		if set["url"] {
			spec.URL = *pattern
		}
		if set["match"] {
			spec.Match = *match
		}
		if set["attributes"] {
			spec.Attributes = list
		}
		if set["proxy"] {
			spec.Proxy = *proxy
		}
		if set["logout-url"] {
			spec.LogoutURL = *logoutURL
		}
		if set["order"] {
			spec.Order = *order
		}
		s, err := spec.Service()
		if err != nil {
			return invalidCASService(err)
		}
		s.Source, s.CreatedAt, s.UpdatedAt = old.Source, old.CreatedAt, e.now()
		if err := db.UpsertCASService(ctx, s); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "CAS service %s updated\n", s.ID)
		return nil
	case "match":
		if len(rest) != 1 {
			return usageError{"want exactly one service URL"}
		}
		return matchCASService(ctx, e, db, rest[0])
	case "import":
		if len(rest) == 0 {
			return usageError{"want the Apereo JSON service files or directories to import"}
		}
		return importApereoServices(ctx, e, db, rest, *dryRun)
	case "list":
		list, err := db.ListCASServices(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tORDER\tMATCH\tURL\tSOURCE")
		cas.SortServices(list) // the order in which they are tried
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.ID, s.Name, s.Order, s.Match, s.URLPattern, s.Source)
		}
		return tw.Flush()
	case "show":
		s, err := one()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "id:\t%s\nname:\t%s\nurl:\t%s\nmatch:\t%s\norder:\t%d\nattributes:\t%s\nproxy:\t%t\nlogout URL:\t%s\nmanaged by:\t%s\ncreated:\t%s\nupdated:\t%s\n",
			s.ID, s.Name, s.URLPattern, s.Match, s.Order, strings.Join(s.Attributes, ","), s.AllowProxy, s.LogoutURL, s.Source,
			s.CreatedAt.Local().Format(time.DateTime), s.UpdatedAt.Local().Format(time.DateTime))
		return tw.Flush()
	case "delete":
		s, err := one()
		if err != nil {
			return err
		}
		if s.Source == store.ClientFromConfig {
			return fmt.Errorf("CAS service %q is declared in the configuration file (cas.services): remove it there", s.ID)
		}
		if err := db.DeleteCASService(ctx, s.ID); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "CAS service %s deleted\n", s.ID)
		return nil
	}
	return usageError{fmt.Sprintf("unknown subcommand %q", sub)}
}

// matchCASService explains how the registry meets a service URL.
func matchCASService(ctx context.Context, e *env, db *store.DB, raw string) error {
	norm, ok := cas.Normalize(raw)
	if !ok {
		return fmt.Errorf("%q is refused before any pattern: not an absolute http(s) URL, or one a browser could read otherwise "+
			"(a backslash, a dot segment, an encoded slash, a user name)", raw)
	}
	fmt.Fprintf(e.stdout, "normalised: %s\n", norm)
	list, err := db.ListCASServices(ctx)
	if err != nil {
		return err
	}
	cas.SortServices(list)
	answered := false
	for _, s := range list {
		why := cas.Explain(s, norm)
		switch {
		case why == "" && !answered:
			fmt.Fprintf(e.stdout, "answers:    %s (%s, %s %s, order %d)\n", s.ID, s.Name, s.Match, s.URLPattern, s.Order)
			answered = true
		case why == "":
			fmt.Fprintf(e.stdout, "also:       %s (matches too, but comes after)\n", s.ID)
		case why != "no match":
			fmt.Fprintf(e.stdout, "refused:    %s: %s\n", s.ID, why)
		}
	}
	if !answered {
		return fmt.Errorf("no CAS service answers for %s: people coming from it get the unknown-application page", norm)
	}
	return nil
}

func invalidCASService(err error) error {
	return fmt.Errorf("invalid CAS service:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
}

// startCAS puts the configuration file's services in the registry.
func startCAS(ctx context.Context, cfg config.Config, db *store.DB, now func() time.Time) error {
	var specs []cas.ServiceSpec
	for _, s := range cfg.CAS.Services {
		specs = append(specs, cas.ServiceSpec{ID: s.ID, Name: s.Name, URL: s.URL, Match: s.Match, Attributes: s.Attributes,
			Proxy: s.Proxy, LogoutURL: s.LogoutURL, Order: s.Order})
	}
	return cas.SyncServices(ctx, db, specs, now())
}

// casScope is the eduPersonPrincipalName domain.
func casScope(cfg config.Config) string {
	if cfg.CAS.EPPNScope != "" {
		return cfg.CAS.EPPNScope
	}
	if u, err := url.Parse(cfg.PublicURL); err == nil {
		return u.Hostname()
	}
	return "localhost"
}
