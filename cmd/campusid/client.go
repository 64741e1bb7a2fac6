package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"campusid/internal/config"
	"campusid/internal/oidc"
	"campusid/internal/store"
)

const clientAbout = `Manage the applications (OpenID Connect clients) that sign people in with campusid.

  client add --id ID --name NAME --redirect-uri URI [--redirect-uri URI...] [--public] [--first-party]
             [--grant TYPE...] [--post-logout-uri URI...] [--backchannel-logout-uri URI] [--scope SCOPE...]
      Register an application. A confidential one (the default) gets a secret, printed
      once: campusid keeps only its SHA-256. --public is for native and single-page
      applications (no secret, PKCE required). --first-party skips the consent page.
      Grants: authorization_code (default, with refresh_token), refresh_token,
      client_credentials (confidential only), device_code. Scopes (default: openid profile
      email offline_access) may add the application's own. Redirect URIs are exact: https,
      or http on localhost/127.0.0.1/[::1] (any port for a public client), or a private-use
      scheme for a native application.
  client list
  client show ID
  client update ID [the flags of add] [--new-secret]
      A flag given replaces that setting (repeated flags make the new list); --new-secret
      prints a new secret and invalidates the old one.
  client delete ID
      Remove the application with its consents and tokens.

Applications declared in the configuration file (oidc.clients) are managed there.`

func runClient(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "client", "client <add|list|show|update|delete> [flags]", clientAbout)
	path := fs.String("config", "", "configuration file (YAML)")
	id := fs.String("id", "", "client id (add)")
	name := fs.String("name", "", "name shown to people on the consent page")
	var redirects, logouts, grants, scopes stringList
	fs.Var(&redirects, "redirect-uri", "redirect URI (repeat for several)")
	fs.Var(&logouts, "post-logout-uri", "URI to return to after logout (repeat for several)")
	fs.Var(&grants, "grant", "allowed grant type (repeat for several)")
	fs.Var(&scopes, "scope", "allowed scope (repeat for several)")
	backchannel := fs.String("backchannel-logout-uri", "", "URI receiving back-channel logout tokens")
	public := fs.Bool("public", false, "public client: no secret, PKCE required")
	first := fs.Bool("first-party", false, "trusted application: no consent page")
	newSecret := fs.Bool("new-secret", false, "generate a new secret (update)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{"missing subcommand: add, list, show, update or delete"}
	}
	sub, rest := pos[0], pos[1:]
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	db, err := openCLI(ctx, e, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	one := func() (store.OIDCClient, error) {
		if len(rest) != 1 {
			return store.OIDCClient{}, usageError{"want exactly one client id"}
		}
		c, err := db.OIDCClientByID(ctx, rest[0])
		if errors.Is(err, store.ErrNotFound) {
			return c, fmt.Errorf("no client %q (see 'campusid client list')", rest[0])
		}
		return c, err
	}
	now := e.now()
	switch sub {
	case "add":
		if len(rest) > 0 {
			return usageError{fmt.Sprintf("unexpected argument %q", rest[0])}
		}
		spec := oidc.ClientSpec{ID: *id, Name: *name, Public: *public, FirstParty: *first, RedirectURIs: redirects,
			PostLogoutURIs: logouts, BackchannelLogoutURI: *backchannel, Grants: grants, Scopes: scopes}
		c, err := spec.Client()
		if err != nil {
			return invalidClient(err)
		}
		secret := ""
		if !c.Public {
			secret, c.SecretHash = oidc.NewSecret()
		}
		c.Source, c.CreatedAt, c.UpdatedAt = store.ClientFromCLI, now, now
		if err := db.CreateOIDCClient(ctx, c); errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("a client with id %q exists already", c.ID)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "client_id:     %s\n", c.ID)
		if secret != "" {
			fmt.Fprintf(e.stdout, "client_secret: %s\n", secret)
			fmt.Fprintln(e.stderr, "Keep the secret now: campusid stores only its hash and cannot show it again.")
		}
		return nil
	case "list":
		list, err := db.ListOIDCClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTYPE\tCONSENT\tGRANTS\tSOURCE")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, clientType(c), consentKind(c), strings.Join(c.GrantTypes, ","), c.Source)
		}
		return tw.Flush()
	case "show":
		c, err := one()
		if err != nil {
			return err
		}
		return showClient(e.stdout, c)
	case "update":
		c, err := one()
		if err != nil {
			return err
		}
		if c.Source == store.ClientFromConfig {
			return fmt.Errorf("client %q is declared in the configuration file (oidc.clients): change it there", c.ID)
		}
		if set["id"] {
			return usageError{"the id of a client cannot change"}
		}
		spec := oidc.ClientSpec{ID: c.ID, Name: c.Name, Public: c.Public, FirstParty: c.FirstParty, RedirectURIs: c.RedirectURIs,
			PostLogoutURIs: c.PostLogoutURIs, BackchannelLogoutURI: c.BackchannelLogoutURI, Grants: c.GrantTypes, Scopes: c.Scopes}
		if set["name"] {
			spec.Name = *name
		}
		if set["redirect-uri"] {
			spec.RedirectURIs = redirects
		}
		if set["post-logout-uri"] {
			spec.PostLogoutURIs = logouts
		}
		if set["backchannel-logout-uri"] {
			spec.BackchannelLogoutURI = *backchannel
		}
		if set["grant"] {
			spec.Grants = grants
		}
		if set["scope"] {
			spec.Scopes = scopes
		}
		if set["public"] {
			spec.Public = *public
		}
		if set["first-party"] {
			spec.FirstParty = *first
		}
		u, err := spec.Client()
		if err != nil {
			return invalidClient(err)
		}
		u.SecretHash, u.UpdatedAt = c.SecretHash, now
		secret := ""
		switch {
		case u.Public:
			u.SecretHash = ""
		case *newSecret || c.SecretHash == "":
			secret, u.SecretHash = oidc.NewSecret()
		}
		if err := db.UpdateOIDCClient(ctx, u); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "client %s updated\n", u.ID)
		if secret != "" {
			fmt.Fprintf(e.stdout, "client_secret: %s\n", secret)
			fmt.Fprintln(e.stderr, "Keep the secret now: campusid stores only its hash and cannot show it again.")
		}
		return nil
	case "delete":
		c, err := one()
		if err != nil {
			return err
		}
		if c.Source == store.ClientFromConfig {
			return fmt.Errorf("client %q is declared in the configuration file (oidc.clients): remove it there", c.ID)
		}
		if err := db.DeleteOIDCClient(ctx, c.ID); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "client %s deleted, with its consents and tokens\n", c.ID)
		return nil
	}
	return usageError{fmt.Sprintf("unknown subcommand %q", sub)}
}

func invalidClient(err error) error {
	return fmt.Errorf("invalid client:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
}

func clientType(c store.OIDCClient) string {
	if c.Public {
		return "public"
	}
	return "confidential"
}

func consentKind(c store.OIDCClient) string {
	if c.FirstParty {
		return "first-party"
	}
	return "asked"
}

func showClient(w io.Writer, c store.OIDCClient) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\nname:\t%s\ntype:\t%s\nconsent:\t%s\n", c.ID, c.Name, clientType(c), consentKind(c))
	for _, u := range c.RedirectURIs {
		fmt.Fprintf(tw, "redirect URI:\t%s\n", u)
	}
	for _, u := range c.PostLogoutURIs {
		fmt.Fprintf(tw, "post-logout URI:\t%s\n", u)
	}
	if c.BackchannelLogoutURI != "" {
		fmt.Fprintf(tw, "back-channel logout URI:\t%s\n", c.BackchannelLogoutURI)
	}
	fmt.Fprintf(tw, "grants:\t%s\nscopes:\t%s\nmanaged by:\t%s\ncreated:\t%s\nupdated:\t%s\n", strings.Join(c.GrantTypes, " "),
		strings.Join(c.Scopes, " "), c.Source, c.CreatedAt.Local().Format(time.DateTime), c.UpdatedAt.Local().Format(time.DateTime))
	return tw.Flush()
}

// configClients turns the configuration file's applications into specs,
// reading their secrets.
func configClients(cfg config.Config) ([]oidc.ConfigClient, error) {
	var out []oidc.ConfigClient
	for _, c := range cfg.OIDC.Clients {
		cc := oidc.ConfigClient{ClientSpec: oidc.ClientSpec{ID: c.ID, Name: c.Name, Public: c.Public, FirstParty: c.FirstParty,
			RedirectURIs: c.RedirectURIs, PostLogoutURIs: c.PostLogoutURIs, BackchannelLogoutURI: c.BackchannelLogoutURI,
			Grants: c.Grants, Scopes: c.Scopes}, SecretHash: c.SecretSHA256}
		if c.SecretFile != "" {
			s, err := c.Secret()
			if err != nil {
				return nil, err
			}
			cc.SecretHash = oidc.HashSecret(s)
		}
		out = append(out, cc)
	}
	return out, nil
}
